// `npm run bench:pieces`: what each of the project's pieces costs a read, including what it makes
// others do (a header Node validates when the answer goes out), which a CPU profile puts elsewhere.
// The floor, then the floor with the project's own plugins added one at a time
// (bench/fixtures/pieces.mjs), then the whole project, measured side by side under the read load
// of `npm run bench`, three processes each; a piece's cost is its row minus the row above.
// Processes of the same code differ by up to 10%, so a small piece is best measured alone:
// BENCH_PIECES="bridge,routes,guard;bridge,routes,guard,headers" compares just those two rows.
import { measureSideBySide, printTable, readLoad } from './measure.js'
import { openDatabase, projectEntry, projectEnv, runChecked, type Target } from './harness.js'

// In the order they are added; each row has its own and every piece above it.
const LADDER: Array<[piece: string, label: string]> = [
  ['bridge', 'the session bridge (write before answering, lazy touch, cookie policy, no-store)'],
  ['routes', 'the routes: GET /session with its response schema, the error handler'],
  ['guard', 'the cross-site guard'],
  ['headers', 'the security headers'],
  ['cors', 'CORS (one origin listed)'],
  ['metrics', 'the metrics hooks'],
  ['trust-proxy', 'the trust-proxy function'],
  ['log', 'the logger at info (one line per request)']
]

const database = await openDatabase()
try {
  await runChecked('node', ['scripts/build-if-needed.mjs'])
  const env = projectEnv(database)
  const rung = (pieces: string[], name: string): Target => ({ name, args: ['bench/fixtures/pieces.mjs'], env: { ...env, PIECES: pieces.join(',') }, cookie: 'own' })
  const chosen = process.env.BENCH_PIECES
  const targets: Target[] = chosen
    ? chosen.split(';').map((pieces) => rung(pieces.split(',').filter(Boolean), pieces || 'floor'))
    : [
        rung([], 'floor'),
        ...LADDER.map(([, label], i) => rung(LADDER.slice(0, i + 1).map(([piece]) => piece), `+ ${label}`)),
        { name: '= this project (dist/server.js: also its other routes, docs, auth)', args: projectEntry, env, cookie: 'own' }
      ]
  const rows = await measureSideBySide(database, targets, 'GET /session, existing session', readLoad, { replicas: 3 })
  printTable('What each piece costs a read (each row adds one piece to the row above)', rows, { delta: true })
} finally {
  await database.close()
}
