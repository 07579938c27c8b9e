/** Why a manager cancelled its other transfers (the abort reason of its signal). */

/** Failure policy `stop`: one transfer failed, so the manager cancelled the rest. */
export class SiblingFailed extends Error {
  override name = 'SiblingFailed';
}

/**
 * The endpoint cannot be reached (see `EndpointWatch`): the manager cancelled the rest, whatever
 * its failure policy, as if it were `stop`.
 */
export class EndpointUnreachable extends SiblingFailed {
  override name = 'EndpointUnreachable';
}
