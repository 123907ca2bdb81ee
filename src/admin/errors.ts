/**
 * One JSON error shape for every route: `{ statusCode, error, message, field? }`. Settings errors keep their
 * message (it names the key and what is expected); request validation errors name the offending field.
 */
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import { InvalidQueueIdError } from '../queue/id.js';
import { SettingsError } from '../settings/errors.js';
import { UnknownReferenceError } from '../settings/references.js';
import { TempFailure } from '../lib/errors.js';
import type { Logger } from '../lib/logger.js';

export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }
}

export const badRequest = (message: string, field?: string) => new HttpError(400, message, field);
export const notFound = (message: string) => new HttpError(404, message);

const REASON: Record<number, string> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  405: 'Method Not Allowed',
  409: 'Conflict',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

export function errorBody(statusCode: number, message: string, field?: string) {
  return { statusCode, error: REASON[statusCode] ?? 'Error', message, ...(field ? { field } : {}) };
}

interface AjvError {
  instancePath?: string;
  message?: string;
  params?: { missingProperty?: string; additionalProperty?: string; allowedValues?: unknown[] };
}

/** "body.type: must be one of local, relay" — the field first, as a person would say it. */
function validationMessage(context: string | undefined, errors: AjvError[]): { message: string; field: string } {
  const parts = errors.map((e) => {
    const path = (e.instancePath ?? '').split('/').filter(Boolean);
    if (e.params?.missingProperty) path.push(e.params.missingProperty);
    if (e.params?.additionalProperty) path.push(e.params.additionalProperty);
    const field = [context ?? 'body', ...path].join('.');
    let msg = e.message ?? 'is not valid';
    if (e.params?.missingProperty) msg = 'is required';
    else if (e.params?.additionalProperty) msg = 'is not a known field';
    else if (e.params?.allowedValues) msg = `must be one of ${e.params.allowedValues.map(String).join(', ')}`;
    return { field, text: `${field}: ${msg}` };
  });
  return { message: parts.map((p) => p.text).join('; '), field: parts[0]?.field ?? context ?? 'body' };
}

export function makeErrorHandler(log: Logger) {
  return (err: FastifyError | Error, req: FastifyRequest, reply: FastifyReply) => {
    if (err instanceof HttpError) return reply.code(err.statusCode).send(errorBody(err.statusCode, err.message, err.field));
    // Something the directory does not know: a bad value in the request (400), not a missing resource.
    if (err instanceof UnknownReferenceError) return reply.code(400).send(errorBody(400, err.message, err.key));
    if (err instanceof SettingsError) {
      const code = err.code === 'exists' ? 409 : err.code === 'not-found' ? 404 : 400;
      return reply.code(code).send(errorBody(code, err.message, err.key));
    }
    if (err instanceof InvalidQueueIdError) return reply.code(400).send(errorBody(400, `${err.message} (queue ids are 16 letters and digits)`, 'ids'));
    if (err instanceof TempFailure) {
      log.warn({ err: err.message, url: req.url }, 'admin request: temporary failure');
      return reply.code(503).header('retry-after', '30').send(errorBody(503, `temporarily unavailable: ${err.message}`));
    }
    const fe = err as FastifyError & { validation?: AjvError[]; validationContext?: string };
    if (fe.validation) {
      const { message, field } = validationMessage(fe.validationContext, fe.validation);
      return reply.code(400).send(errorBody(400, message, field));
    }
    if (typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500) {
      return reply.code(fe.statusCode).send(errorBody(fe.statusCode, fe.message));
    }
    log.error({ err, url: req.url, method: req.method }, 'admin request failed');
    return reply.code(500).send(errorBody(500, 'internal error; see the server log'));
  };
}
