// Convex accepts Clerk's "convex" JWT-template tokens: issuer = your Clerk Frontend API URL,
// audience (applicationID) = "convex". Set CLERK_JWT_ISSUER_DOMAIN in the Convex dashboard.
export default {
  providers: [
    {
      domain: process.env.CLERK_JWT_ISSUER_DOMAIN,
      applicationID: 'convex',
    },
  ],
}
