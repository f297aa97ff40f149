/**
 * A worker's compiled modules read into memory at start-up, so that the
 * worker can be started after isolation (cfg.tuning.memory.lazyUdp;
 * perf/README.md "Memory per instance").
 *
 * Theory of operation
 * - Isolation (isolation.ts) may pivot the process into an empty root: a
 *   worker started later finds none of our files on disk. Before that,
 *   readWorkerImage() follows the worker's require() calls from its entry
 *   file (tsc's CommonJS output: `require("./x")`, `require("pkg")`),
 *   resolving each the way Node would, and keeps every file's source and
 *   every (file, specifier) → file resolution, gzipped (about 300 kB of
 *   source, 70 kB kept).
 * - node-gyp-build (native.ts) searches directories for the addon when
 *   called; in the image it is a module of two lines that requires the
 *   addon by the path the main thread loaded it from. dlopen() of a path
 *   already loaded finds the library by its name, without the filesystem.
 * - The worker runs BOOT (eval): it installs a resolver and a `.js` loader
 *   over Node's CommonJS loader that serve the image's files and fall
 *   back to Node's own for anything else (the built-in modules), then
 *   requires the entry.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { builtinModules } from 'node:module';
import { gzipSync } from 'node:zlib';

/** What the worker's boot code receives in workerData.image. */
export interface WorkerImage {
  entry: string;
  /** gzip of JSON { files: {filename: source}, deps: {filename: {specifier: filename}} }. */
  gz: Uint8Array;
}

const REQUIRE = /\brequire\(\s*(["'])([^"']+)\1\s*\)/g;

/** The native addon this process loaded (native.ts): one .node file in the module cache. */
function loadedAddon(): string {
  const addons = Object.keys(require.cache).filter((k) => k.endsWith('.node'));
  if (addons.length !== 1) throw new Error(`worker image: expected one loaded addon, found ${addons.length}`);
  return addons[0];
}

/** The image of the worker whose compiled entry file is `entry` (absolute). */
export function readWorkerImage(entry: string): WorkerImage {
  const files: Record<string, string> = {};
  const deps: Record<string, Record<string, string>> = {};
  const root = fs.realpathSync(entry);
  const todo = [root];
  while (todo.length) {
    const file = todo.pop() as string;
    if (file in files) continue;
    const src = fs.readFileSync(file, 'utf8');
    files[file] = src;
    const d: Record<string, string> = {};
    for (const m of src.matchAll(REQUIRE)) {
      const spec = m[2];
      if (spec in d || spec.startsWith('node:') || builtinModules.includes(spec)) continue;
      if (spec === 'node-gyp-build') {
        // the addon, by the path the main thread loaded it from (native.ts)
        const shim = path.join(path.dirname(file), 'node-gyp-build.image.js');
        const addon = loadedAddon();
        files[shim] = `'use strict';\nmodule.exports = () => require(${JSON.stringify(addon)});\n`;
        deps[shim] = { [addon]: addon };
        d[spec] = shim;
        continue;
      }
      const target = fs.realpathSync(require.resolve(spec, { paths: [path.dirname(file)] }));
      d[spec] = target;
      if (target.endsWith('.js')) todo.push(target);
    }
    deps[file] = d;
  }
  return { entry: root, gz: gzipSync(JSON.stringify({ files, deps })) };
}

/**
 * The worker's eval code: serves the image's modules (workerData.image),
 * then runs the entry. Kept to what a bare eval context has (require).
 */
export const BOOT = `'use strict';
(() => {
  const Module = require('node:module');
  const { workerData } = require('node:worker_threads');
  const { gunzipSync } = require('node:zlib');
  const entry = workerData.image.entry;
  // decoded in a function of its own, the image dropped first: nothing of
  // the decoding is reachable by the time the worker compacts its heap
  const { files, deps } = ((image) => JSON.parse(gunzipSync(image.gz).toString('utf8')))(
    (() => { const i = workerData.image; delete workerData.image; return i; })());
  const resolve = Module._resolveFilename;
  Module._resolveFilename = function (request, parent, isMain, options) {
    const d = parent && deps[parent.filename];
    if (d && Object.prototype.hasOwnProperty.call(d, request)) return d[request];
    if (Object.prototype.hasOwnProperty.call(files, request)) return request;
    return resolve.call(this, request, parent, isMain, options);
  };
  const loadJs = Module._extensions['.js'];
  Module._extensions['.js'] = function (module, filename) {
    if (!Object.prototype.hasOwnProperty.call(files, filename)) return loadJs.call(this, module, filename);
    const src = files[filename];
    delete files[filename];
    module._compile(src, filename);
  };
  require(entry);
})();
`;
