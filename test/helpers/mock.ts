/**
 * The abort signal s3xfer handed to `client.send(command, { abortSignal })` in a call recorded by
 * aws-sdk-client-mock. (Its typings know only the one-argument `send`.)
 */
export function abortSignalOf(call: { args: readonly unknown[] }): AbortSignal | undefined {
  return (call.args[1] as { abortSignal?: AbortSignal } | undefined)?.abortSignal;
}
