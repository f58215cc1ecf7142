import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

export interface ReceivedRequest {
  path: string;
  headers: IncomingHttpHeaders;
  rawBody: Buffer;
  receivedAt: number;
}

/** What the receiver does with the n-th request (0-based) to a path. */
export type ReceiverBehaviour = (request: ReceivedRequest, index: number, response: ServerResponse, socket: Socket) => void;

export const answer =
  (status: number, body = '', headers: Record<string, string> = {}): ReceiverBehaviour =>
  (_request, _index, response) => {
    response.writeHead(status, headers).end(body);
  };

/** Answers `status` after `delayMs`: a slow receiver. */
export const answerAfter =
  (delayMs: number, status = 200): ReceiverBehaviour =>
  (_request, _index, response) => {
    setTimeout(() => response.writableEnded || response.destroyed || response.writeHead(status).end('slow'), delayMs);
  };

/** A real HTTP receiver on 127.0.0.1 that records every request and answers as scripted per path. */
export class TestReceiver {
  readonly requests: ReceivedRequest[] = [];
  private readonly scripts = new Map<string, ReceiverBehaviour[]>();
  private readonly openSockets = new Set<Socket>();
  private readonly held: ServerResponse[] = [];
  private server: Server;
  port = 0;

  /** Behaviours for consecutive requests to `path`; the last one repeats. */
  script(path: string, ...behaviours: ReceiverBehaviour[]): this {
    this.scripts.set(path, behaviours);
    return this;
  }

  url(path: string, host = '127.0.0.1'): string {
    return `http://${host}:${this.port}${path}`;
  }

  to(path: string): ReceivedRequest[] {
    return this.requests.filter((request) => request.path === path);
  }

  /** Requests whose answer is being held back (see `hold`). */
  get heldCount(): number {
    return this.held.filter((response) => !response.writableEnded && !response.destroyed).length;
  }

  async start(): Promise<this> {
    this.server = createServer((request, response) => this.handle(request, response));
    this.server.on('connection', (socket) => {
      this.openSockets.add(socket);
      socket.on('close', () => this.openSockets.delete(socket));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    this.openSockets.forEach((socket) => socket.destroy());
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Answers every held request, with 200 unless told otherwise. */
  releaseHeld(status = 200): void {
    this.held.splice(0).forEach((response) => response.writableEnded || response.destroyed || response.writeHead(status).end('late'));
  }

  /** Never answers (until released or the receiver stops). */
  readonly hold: ReceiverBehaviour = (_request, _index, response) => {
    this.held.push(response);
  };

  private handle(request: IncomingMessage, response: ServerResponse): void {
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      const received: ReceivedRequest = {
        path: request.url ?? '/',
        headers: request.headers,
        rawBody: Buffer.concat(chunks),
        receivedAt: Date.now(),
      };
      const index = this.to(received.path).length;
      this.requests.push(received);
      const behaviours = this.scripts.get(received.path) ?? [answer(200, 'ok')];
      behaviours[Math.min(index, behaviours.length - 1)](received, index, response, request.socket);
    });
  }
}

/** Waits until `check` returns a truthy value, polling; fails with `message` after `timeoutMs`. */
export async function waitFor<T>(
  check: () => Promise<T> | T,
  message: string,
  timeoutMs = 15_000,
): Promise<Exclude<T, false | null | undefined | 0 | ''>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as Exclude<T, false | null | undefined | 0 | ''>;
    if (Date.now() > deadline) throw new Error(`Timed out waiting for ${message}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}
