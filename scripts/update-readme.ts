/** `npm run docs`: rewrites the generated configuration reference in README.md from the zod schema. */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../src/config/load.ts';
import { configReferenceMarkdown, REFERENCE_END, REFERENCE_START } from '../src/config/reference.ts';

const file = join(PACKAGE_ROOT, 'README.md');
const readme = readFileSync(file, 'utf8');
const start = readme.indexOf(REFERENCE_START);
const end = readme.indexOf(REFERENCE_END);
if (start < 0 || end < start) throw new Error('README.md has no config-reference markers');
writeFileSync(file, readme.slice(0, start + REFERENCE_START.length) + '\n' + configReferenceMarkdown() + '\n' + readme.slice(end));
console.log('README.md: configuration reference updated');
