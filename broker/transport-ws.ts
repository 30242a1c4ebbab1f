import type { Server } from 'node:http';
import { WebSocketServer, createWebSocketStream } from 'ws';
import type { ParleyBroker } from './broker.ts';

export const WS_PATH = '/mqtt';

/** MQTT over WebSocket on the HTTP server's port, path /mqtt, subprotocol `mqtt` (or the 3.1 name `mqttv3.1`). */
export function attachWebSocket(http: Server, broker: ParleyBroker, maxPayload: number): WebSocketServer {
  const wss = new WebSocketServer({
    noServer: true,
    maxPayload,
    handleProtocols: (protocols) => (protocols.has('mqtt') ? 'mqtt' : protocols.has('mqttv3.1') ? 'mqttv3.1' : false),
  });
  http.on('upgrade', (req, socket, head) => {
    const path = (req.url ?? '').split('?')[0];
    if (path !== WS_PATH) {
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n');
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      req.socket.setNoDelay(true);
      const stream = createWebSocketStream(ws);
      stream.on('error', () => ws.terminate());
      broker.handle(stream, 'ws', req);
    });
  });
  return wss;
}
