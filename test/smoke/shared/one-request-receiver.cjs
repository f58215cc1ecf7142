// A receiver on 127.0.0.1 that resolves with the first request it gets (headers and raw body).
const { createServer } = require('node:http');

async function startOneRequestReceiver() {
  let server;
  const arrived = new Promise((resolve) => {
    server = createServer((request, response) => {
      const chunks = [];
      request.on('data', (chunk) => chunks.push(chunk));
      request.on('end', () => {
        response.end('ok');
        resolve({ headers: request.headers, body: Buffer.concat(chunks) });
      });
    }).listen(0, '127.0.0.1');
  });
  await new Promise((resolve) => server.once('listening', resolve));
  return { port: server.address().port, arrived, close: () => server.close() };
}

module.exports = { startOneRequestReceiver };
