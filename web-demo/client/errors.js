// The API's errors, as the client reports them.

/**
 * An error answered by the API: `status` (0 for a stream's error message, or when the
 * service cannot be reached), `message`, the request `field` at fault, `code` (the body's
 * `error`), and `seq`: the stream segment that failed, if one did.
 */
export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || body?.error || `HTTP ${status}`);
    this.name = 'ApiError';
    this.status = status;
    this.code = body?.error ?? null;
    this.field = body?.field ?? null;
    this.seq = body?.seq ?? null;
    this.body = body;
  }
}
