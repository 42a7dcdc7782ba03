import { auth } from '@clerk/nextjs/server'
import { Demo } from './demo'

export const dynamic = 'force-dynamic'

export default async function Page() {
  const { userId } = await auth()
  // The local stack's dev sign-in page (no Clerk account needed). With a real Clerk instance you
  // would use Clerk's <SignIn /> components instead.
  const signIn = process.env.SESSION_AUDIO_DEV_SIGN_IN_URL ?? '/sign-in'
  const signOut = process.env.SESSION_AUDIO_DEV_SIGN_OUT_URL ?? '/sign-out'
  return (
    <main>
      <h1>session-audio demo</h1>
      {userId ? (
        <Demo userId={userId} signOutUrl={signOut} localBlobApi={process.env.SESSION_AUDIO_BROWSER_BLOB_API_URL} />
      ) : (
        <p>
          You are signed out.{' '}
          <a id="sign-in" href={signIn} data-redirect="true">
            Sign in as a dev user
          </a>
        </p>
      )}
      <script
        // The sign-in page sends the browser back here afterwards.
        dangerouslySetInnerHTML={{
          __html:
            "document.querySelectorAll('a[data-redirect]').forEach(a=>{a.href+='?redirect_url='+encodeURIComponent(location.href)})",
        }}
      />
    </main>
  )
}
