import yargs, { type Argv } from 'yargs';

/**
 * A yargs parser for `argv` that does not lay out help it will not show. yargs builds a command's
 * whole help text before running its handler, in case the handler fails and help must be printed
 * (s3xfer never prints help then): ~45 ms of a small upload's start-up, and most of the CPU of a
 * `run` batch of small commands, where every line is parsed.
 */
export function createParser(argv: string[]): Argv {
  const parser = yargs(argv);
  const usage = (parser as unknown as { getInternalMethods?: () => { getUsageInstance?: () => { cacheHelpMessage?: () => void } } })
    .getInternalMethods?.()
    .getUsageInstance?.();
  if (usage?.cacheHelpMessage) usage.cacheHelpMessage = () => {};
  // A repeated flag takes its last value (yargs would otherwise pass an array along).
  return parser.parserConfiguration({ 'duplicate-arguments-array': false });
}

/**
 * yargs's failure message as one line: its "Invalid values:" report spans lines
 * (`Invalid values:\n  Argument: acl, Given: "x", Choices: …`), and an error is one line.
 */
export function parserMessage(message: string): string {
  return message.replace(/:\s*\n\s*/g, ': ').replace(/\s*\n\s*/g, '; ');
}
