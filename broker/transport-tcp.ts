import net from 'node:net';
import type { ParleyBroker } from './broker.ts';

/** MQTT over plain TCP. TCP_NODELAY: without it a chat client waits on delayed ACKs (~40 ms p99). */
export function tcpServer(broker: ParleyBroker): net.Server {
  return net.createServer({ noDelay: true }, (socket) => broker.handle(socket, 'tcp'));
}
