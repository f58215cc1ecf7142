// A delivery worker in a process of its own, so that its peak memory is its own: boots the module
// on the database named in BENCH_WORKER (JSON: database, file, webhook options), says "ready", and
// closes on "stop".
import { bootApp } from './app.mjs';

const { database, file, webhook } = JSON.parse(process.env.BENCH_WORKER);
const { app } = await bootApp(database, file, webhook, { fresh: false });
process.send({ type: 'ready' });
process.on('message', async (message) => {
  if (message.type !== 'stop') return;
  await app.close();
  process.exit(0);
});
