// Bundles the dashboard: src/main.tsx (with its CSS) into app.js and app.css, and copies
// index.html, into the directory given as the first argument (default dist/). esbuild's output
// depends only on the sources and the versions package-lock.json pins, so a build is
// reproducible from the lockfile.
import { build } from 'esbuild';
import { copyFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

const out = process.argv[2] || 'dist';
mkdirSync(out, { recursive: true });
await build({
  entryPoints: { app: 'src/main.tsx' },
  bundle: true,
  minify: true,
  format: 'iife',
  target: ['es2020'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  outdir: out,
  legalComments: 'none',
  logLevel: 'warning',
});
copyFileSync('index.html', join(out, 'index.html'));
