'use strict'

// fastify generate's shape: a plugin that fastify-cli (scripts.start) loads and serves, on the
// address it picks (localhost, unless it finds Docker or Kubernetes, or FASTIFY_ADDRESS says).
module.exports = async function (fastify, opts) {
  fastify.get('/', async () => `Hello from node-fastify-cli: Fastify ${fastify.version}, listening on ` +
    `${fastify.server.address().address}\n`)
}
