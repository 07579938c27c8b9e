import type { CliCommand } from '../command.js';
import { cpCommand, downloadCommand, uploadCommand } from './cp.js';
import { lsCommand } from './ls.js';
import { rmCommand } from './rm.js';
import { runCommand } from './run.js';
import { syncCommand } from './sync.js';

/** Every command, one module each. */
export const COMMANDS: CliCommand[] = [cpCommand, syncCommand, lsCommand, rmCommand, runCommand, uploadCommand, downloadCommand];

/** The commands a line of `run` may use (not `run` itself). */
export const BATCH_COMMANDS: CliCommand[] = COMMANDS.filter((command) => command !== runCommand);
