/** A metav1.Status failure, shaped as kube-apiserver serialises it. */
export interface Status {
  kind: 'Status';
  apiVersion: 'v1';
  metadata: Record<string, never>;
  status: 'Failure';
  message: string;
  reason: string;
  details?: {
    name?: string;
    group?: string;
    kind?: string;
    causes?: { reason?: string; message: string; field?: string }[];
  };
  code: number;
}

/** An error the request handlers throw; the server turns it into a Status response. */
export class ApiError extends Error {
  constructor(readonly status: Status) {
    super(status.message);
  }
}

/** The group/resource pair the real server names in its messages ("serviceaccounts", "namespaces"). */
export interface Target {
  resource: string;
  name?: string;
}

function status(code: number, reason: string, message: string, details?: Status['details']): ApiError {
  // Key order as the real server writes it: details come before code.
  const body = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason } as Status;
  if (details !== undefined) body.details = details;
  body.code = code;
  return new ApiError(body);
}

/** 401 as an authenticator rejecting a request. */
export const unauthorized = (): ApiError => status(401, 'Unauthorized', 'Unauthorized');

/** 403 with the RBAC authorizer's wording. */
export function forbidden(user: string, verb: string, t: Target, namespace: string | undefined): ApiError {
  const subject = t.name !== undefined ? `${t.resource} "${t.name}" is forbidden` : `${t.resource} is forbidden`;
  const scope = namespace !== undefined ? `in the namespace "${namespace}"` : 'at the cluster scope';
  const details: Status['details'] = { kind: t.resource };
  if (t.name !== undefined) details.name = t.name;
  return status(
    403,
    'Forbidden',
    `${subject}: User "${user}" cannot ${verb} resource "${t.resource}" in API group "" ${scope}`,
    details,
  );
}

/** 404 for a named object. */
export const notFound = (t: Required<Target>): ApiError =>
  status(404, 'NotFound', `${t.resource} "${t.name}" not found`, { name: t.name, kind: t.resource });

/** 404 for a path the server does not serve. */
export const pathNotFound = (): ApiError =>
  status(404, 'NotFound', 'the server could not find the requested resource', {});

/** 409 for an optimistic-concurrency failure. */
export const conflict = (t: Required<Target>): ApiError =>
  status(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${t.resource} "${t.name}": the object has been modified; please apply your changes to the latest version and try again`,
    { name: t.name, kind: t.resource },
  );

/** 409 for a create of an existing name. */
export const alreadyExists = (t: Required<Target>): ApiError =>
  status(409, 'AlreadyExists', `${t.resource} "${t.name}" already exists`, { name: t.name, kind: t.resource });

/** 400 with a free-form message. */
export const badRequest = (message: string): ApiError => status(400, 'BadRequest', message);

/** 405 for a verb the resource does not support here. */
export const methodNotAllowed = (): ApiError =>
  status(405, 'MethodNotAllowed', 'the server does not allow this method on the requested resource', {});

/** 415 for a PATCH content type the server does not know. */
export const unsupportedMediaType = (contentType: string): ApiError =>
  status(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got ${contentType})`,
  );

/**
 * 422 as the patch handler returns it when a JSON patch cannot be applied (a failed `test` included):
 * a generic message with the cause dropped, which kubectl prints as "The request is invalid: ...".
 */
export const patchNotApplicable = (): ApiError =>
  status(422, 'Invalid', 'the server rejected our request due to an error in our request', {});

/** 422 for an object that fails validation. */
export function invalid(kind: string, name: string, causes: { field: string; message: string }[]): ApiError {
  const text = causes.map((c) => `${c.field}: ${c.message}`).join(', ');
  return status(422, 'Invalid', `${kind} "${name}" is invalid: ${text}`, {
    name,
    kind,
    causes: causes.map((c) => ({ reason: 'FieldValueInvalid', message: c.message, field: c.field })),
  });
}
