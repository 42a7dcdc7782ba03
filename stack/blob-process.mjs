// Run the Blob-compatible store in its own process (as the real one is remote): prints one JSON
// line `{ url, apiUrl, host, token, webhookPublicKey }` when listening; exits when stdin closes or on SIGTERM.
//   node stack/blob-process.mjs <root> [port]
import { startBlob } from './blob.mjs'

const [root, port] = process.argv.slice(2)
const blob = await startBlob({ root, port: Number(port || 0) })
process.stdout.write(
  JSON.stringify({
    url: blob.url,
    apiUrl: blob.apiUrl,
    host: blob.host,
    token: blob.token,
    webhookPublicKey: blob.webhookPublicKey,
  }) + '\n',
)
const stop = async () => {
  await blob.close()
  process.exit(0)
}
process.on('SIGTERM', stop)
process.stdin.on('end', stop)
process.stdin.resume()
