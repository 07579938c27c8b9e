#!/usr/bin/env -S node --initial-old-space-size=64
// --initial-old-space-size: Node reads sockets into a fresh 64 KiB buffer each time, and on a
// small heap that churn of external memory starts a full collection every ~30 MiB received;
// a larger initial old generation cuts those from ~30 to ~2 per GiB downloaded (BENCHMARKS.md,
// "Where the CPU goes").
import '../dist/cli/bundle/s3xfer.js';
