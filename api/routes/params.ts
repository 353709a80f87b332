// Route parameters every scope uses. An id in the JSON API (and the admin pages' forms)
// is an integer its schema checks: a malformed one is a 400 naming the field. An id in an
// operator page's path is text the page's pre-handler reads (api/access.ts): a path that
// holds no id is a page that does not exist, 404.
import { Type } from 'typebox';
import { Id } from '../../services/inputs.js';

export const IdParams = Type.Object({ id: Id });

/** A path segment that should hold an id. */
export const PathId = Type.String({ maxLength: 12 });

export const PathIdParams = Type.Object({ id: PathId });
