// Loads the `sluice` CLI as compiled JavaScript: the TypeScript under cli/ and shared/ is
// bundled once with esbuild into node_modules/.cache/sluice-cli/<fingerprint>/ and reused
// until a source file changes (the fingerprint is every source file's path, size and
// mtime). Compiled code starts faster and, with unit threads each loading it again, takes
// about 50 MiB less memory and a fifth less CPU than compiling through tsx on every run.
// When the bundle cannot be built (no esbuild, a read-only install) or SLUICE_FROM_SOURCE=1
// is set, the CLI runs from source through tsx as before.
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SOURCE_DIRS = ['cli', 'shared'];
const PRUNE_AFTER_MS = 24 * 60 * 60 * 1000;
const ENTRY_POINTS = { main: 'cli/main.ts', 'unit-worker': 'cli/threads/unit-worker.ts' };

function sourceFingerprint(esbuildVersion) {
  const hash = createHash('sha1').update(`${process.version}\0${esbuildVersion}\0`);
  for (const dir of SOURCE_DIRS) {
    const files = readdirSync(path.join(root, dir), { recursive: true }).map(String).sort();
    for (const file of files) {
      const info = statSync(path.join(root, dir, file));
      if (info.isFile()) hash.update(`${dir}/${file}\0${info.size}\0${info.mtimeMs}\0`);
    }
  }
  return hash.digest('hex').slice(0, 16);
}

async function compiledCli() {
  const esbuild = await import('esbuild');
  const cacheDir = path.join(root, 'node_modules', '.cache', 'sluice-cli');
  const fingerprint = sourceFingerprint(esbuild.version);
  const outdir = path.join(cacheDir, fingerprint);
  if (!existsSync(path.join(outdir, 'main.js'))) {
    const staging = `${outdir}.${process.pid}.tmp`;
    mkdirSync(cacheDir, { recursive: true });
    await esbuild.build({
      absWorkingDir: root,
      entryPoints: ENTRY_POINTS,
      outdir: staging,
      bundle: true,
      splitting: true,
      format: 'esm',
      platform: 'node',
      target: `node${process.versions.node.split('.')[0]}`,
      packages: 'external',
      sourcemap: 'linked',
      logLevel: 'silent',
    });
    try {
      renameSync(staging, outdir);
    } catch (error) {
      // Another process built the same fingerprint first: use theirs.
      rmSync(staging, { recursive: true, force: true });
      if (!existsSync(path.join(outdir, 'main.js'))) throw error;
    }
    // Builds of older sources go after a day: a run started from one may still start threads from it.
    for (const old of readdirSync(cacheDir)) {
      const dir = path.join(cacheDir, old);
      if (old !== fingerprint && Date.now() - statSync(dir).mtimeMs > PRUNE_AFTER_MS) {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }
  return import(pathToFileURL(path.join(outdir, 'main.js')).href);
}

async function sourceCli() {
  const { register } = await import('tsx/esm/api');
  register();
  return import('../cli/main.ts');
}

/** The CLI module (`{ main }`): compiled when possible, else from source. */
export async function loadCli() {
  if (process.env.SLUICE_FROM_SOURCE === '1') return sourceCli();
  try {
    return await compiledCli();
  } catch (error) {
    if (process.env.SLUICE_DEBUG) console.error(`sluice: running from source (${error?.message ?? error})`);
    return sourceCli();
  }
}
