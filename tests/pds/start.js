// Starts a real Bluesky PDS (AT Protocol dev-env: PDS on SQLite + in-memory PLC), creates one
// account, prints {"url", "handle", "password", "did"} as ONE JSON line on stdout, and keeps
// running until stdin closes or it gets SIGTERM/SIGINT. Used by tests/platforms (pytest).
'use strict'
const { TestNetworkNoAppView } = require('@atproto/dev-env')

async function main() {
  const net = await TestNetworkNoAppView.create({})
  const handle = process.env.PDS_HANDLE || 'artist.test'
  const password = process.env.PDS_PASSWORD || 'artist-pass-' + Math.random().toString(36).slice(2)
  const agent = net.pds.getClient()
  const res = await agent.createAccount({ email: 'artist@example.com', handle, password })
  process.stdout.write(JSON.stringify({
    url: net.pds.url, handle, password, did: res.data.did,
  }) + '\n')

  let closing = false
  const close = async () => {
    if (closing) return
    closing = true
    try { await net.close() } catch (e) { /* already down */ }
    process.exit(0)
  }
  process.on('SIGTERM', close)
  process.on('SIGINT', close)
  process.stdin.on('end', close)
  process.stdin.resume()
}

main().catch((err) => {
  process.stderr.write('PDS start failed: ' + (err && err.stack || err) + '\n')
  process.exit(1)
})
