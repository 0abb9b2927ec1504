#!/usr/bin/env node
// The installed command: a file that exists before the build, so that npm links it on install.
import '../dist/cli.js';
