#!/usr/bin/env node
// Entry point for `npx sluice`: runs the CLI compiled from the checked-out TypeScript
// (rebuilt when a source changes), so there is no build step to forget.
import './quiet-sdk-warning.js';
import { loadCli } from './load-cli.js';

const { main } = await loadCli();
process.exitCode = await main(process.argv.slice(2));
