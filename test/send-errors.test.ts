import type { FastifyInstance } from 'fastify'
import t from 'tap'
import { buildWithDatabase } from './helper.js'

// A route's answer can still fail while it is being written (Node refuses a header value, after the
// bridge has saved the session). That failure is the answer's: a 500 from the error handler, with
// no session cookie, never a request left without an answer and an unhandled rejection.

async function routes (scope: FastifyInstance): Promise<void> {
  scope.get('/bad-header', async (request, reply) => {
    request.raw.session!.state = { visited: true }
    // Not Latin-1: Node's writeHead throws ERR_INVALID_CHAR.
    reply.header('content-disposition', 'attachment; filename="r\u00e9sum\u00e9\u2028.txt"')
    return { ok: true }
  })
}

t.test('a header Node refuses after the save is a 500 without a cookie, not a hang', async (t) => {
  const rejections: unknown[] = []
  const onRejection = (reason: unknown) => { rejections.push(reason) }
  process.on('unhandledRejection', onRejection)
  t.teardown(() => { process.off('unhandledRejection', onRejection) })

  const { app } = await buildWithDatabase(t, {}, { sessionRoutes: routes })
  const answer = await Promise.race([
    app.inject('/bad-header'),
    new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 3000))
  ])
  t.ok(answer, 'the request got an answer')
  t.equal(answer?.statusCode, 500)
  t.notOk(answer?.headers['set-cookie'], 'no session cookie on a failed answer')
  await new Promise((resolve) => setImmediate(resolve))
  t.same(rejections, [], 'no unhandled rejection')
})
