/**
 * A connection that carries whole binary messages (a frame header and a payload) to one remote:
 * ws during the handshake and on coordinator links ({@link Inbox}), RFC 6455 frames straight over
 * the TCP socket on the data links between peers ({@link SocketWire}).
 */
export interface Message {
  /** The frame header's bytes (the first 32, or fewer for a short frame). */
  head: Buffer;
  payload: Buffer;
  isBinary: boolean;
}

export interface WireSink {
  /** A message. Its buffers may be reused once this returns: copy what is kept. */
  message(m: Message): void;
  closed(code: number, reason: string): void;
  /**
   * Asked, by a wire that can, once a large message's header has arrived: where its `bytes`
   * payload bytes should be received (a view of exactly that length, e.g. the part of a tensor
   * they will be copied to), or undefined for the wire's own buffer. The message is delivered as
   * usual, its payload then that view.
   */
  place?(head: Buffer, bytes: number): Uint8Array | undefined;
}

/** A remote broke the protocol (a malformed or oversized frame). */
export class BadFrameError extends Error {}

export interface Wire {
  /** The next message, or a rejection when the connection closes or `timeoutMs` passes. */
  take(timeoutMs: number, what: string): Promise<Message>;
  /** Hands every queued and later message to `sink`. */
  drainTo(sink: WireSink): void;
  /** Sends a header and an optional payload as one message; `done` once written. */
  send(header: Buffer, payload?: Uint8Array, done?: (err?: Error) => void): void;
  ping(): void;
  onPong(fn: () => void): void;
  /** A transport error or a protocol violation by the remote; the connection is closed. */
  onError(fn: (e: Error) => void): void;
  /** Closes with a close frame; the remote sees `code` and `reason`. */
  close(code: number, reason: string): void;
  /** Drops the connection at once. */
  terminate(): void;
}
