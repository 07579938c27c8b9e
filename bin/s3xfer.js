#!/usr/bin/env node
// Node reads sockets into a fresh 64 KiB buffer each time, and on a small heap that churn of
// external memory starts a full collection every ~30 MiB received; letting the heap grow faster
// cuts those from ~10–30 to ~3 per GiB downloaded (BENCHMARKS.md, "Where the CPU goes"). Set
// here, in the executable only: the library leaves its host's V8 flags alone.
import { setFlagsFromString } from 'node:v8';

setFlagsFromString('--heap-growing-percent=400');
await import('../dist/cli/bundle/s3xfer.js');
