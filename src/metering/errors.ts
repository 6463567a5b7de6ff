// Errors of the metering module. Every input error names the request field it is about, so the service can turn it
// into INVALID_ARGUMENT with a message that starts with the field (the README's convention), and none of them
// carries any of the text that was being counted.

/** The caller's input cannot be counted; `field` names it (e.g. `input.messages[3].role`). */
export class MeteringInputError extends Error {
  override name = "MeteringInputError";
  constructor(
    readonly field: string,
    readonly reason: string,
  ) {
    super(`${field}: ${reason}`);
  }
}

/**
 * The text to count is larger than `maxInputBytes` (UTF-8 bytes). Raised before anything is hashed or tokenized.
 * For a chat, `bytes` is the sum over every string that would be counted (contents, names, tool calls, tools).
 */
export class TextTooLargeError extends MeteringInputError {
  override name = "TextTooLargeError";
  constructor(
    field: string,
    readonly bytes: number,
    readonly maxBytes: number,
  ) {
    super(field, `${bytes} bytes of text is over the limit of ${maxBytes} bytes`);
  }
}

/**
 * The worker pool's queue is full: more large texts are waiting to be counted than `maxQueue` allows. Nothing was
 * counted; the caller may retry later (maps naturally to RESOURCE_EXHAUSTED or UNAVAILABLE).
 */
export class MeterOverloadedError extends Error {
  override name = "MeterOverloadedError";
  constructor(readonly queued: number) {
    super(`token counting is overloaded: ${queued} large texts are already waiting`);
  }
}

/** The meter was closed. */
export class MeterClosedError extends Error {
  override name = "MeterClosedError";
  constructor() {
    super("the meter is closed");
  }
}
