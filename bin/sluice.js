#!/usr/bin/env node
// Entry point for `npx sluice`: loads the TypeScript CLI through tsx so no build step is needed.
import { register } from 'tsx/esm/api';
import './quiet-sdk-warning.js';

register();
const { main } = await import('../cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
