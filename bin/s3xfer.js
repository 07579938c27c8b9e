#!/usr/bin/env node
import '../dist/cli/bundle/s3xfer.js';
