// The baseline: bare Aedes with its default in-memory persistence and no hooks, a plain topic relay over
// TCP with TCP_NODELAY, in its own process on the same Node as Parley. Prints `ready <port>` when listening.
import net from 'node:net';
import { Aedes } from 'aedes';

const broker = await Aedes.createBroker();
const server = net.createServer({ noDelay: true }, (socket) => broker.handle(socket));
server.listen(Number(process.env.BENCH_PORT ?? 0), '127.0.0.1', () => {
  const address = server.address() as net.AddressInfo;
  console.log(`ready ${address.port}`);
});

const stop = () => {
  server.close();
  broker.close(() => process.exit(0));
};
process.once('SIGINT', stop);
process.once('SIGTERM', stop);
