// How the backend read an event's binary payload, said the same way by
// every view that shows events: the format that read it, or `hex` with the
// reason it could not be read.

/** The format that read the payload, `hex` if none could, or null for JSON. */
export function readAs(meta) {
  return meta ? (meta.decoded ?? (meta.decode_error ? 'hex' : null)) : null;
}

/** Why the payload stays hex, as a row's tooltip; empty when it does not. */
export function whyHex(meta) {
  return meta?.decode_error ? `not decoded: ${meta.decode_error}` : '';
}
