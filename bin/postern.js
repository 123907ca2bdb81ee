#!/usr/bin/env node
// Entry point for `npx postern` and `npm start`: runs the TypeScript sources through tsx,
// so a fresh `npm ci` is all it takes (no build step that could go stale).
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/main.ts');
process.exitCode = await main(process.argv.slice(2));
