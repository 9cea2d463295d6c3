/**
 * Lists the longest functions of the deployable code (shared/, functions/, cli/, infra/;
 * never test/ or bench/), longest first, so that "each function reads in one screen"
 * (issue 15) is measured rather than claimed.
 *
 * Counted: function declarations, methods, constructors, accessors, and arrow functions or
 * function expressions given a name (a variable, a property, a class field). A nested named
 * function is listed on its own as `outer/inner` and its lines also count in `outer`;
 * anonymous callbacks (`.map((x) => ...)`) count only in the function around them.
 * Lines run from the function's first token (TSDoc excluded) to its closing brace.
 *
 * Run: npx tsx scripts/largest-functions.ts [DIR] [--top N] [--json]
 *   DIR     the repository root to measure (default: this repository)
 *   --top   how many to list (default 30)
 *   --json  print one JSON object instead of a table
 */
import { type Dirent, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

/** The folders measured; test/ and bench/ are left out on purpose. */
export const MEASURED_FOLDERS = ['shared', 'functions', 'cli', 'infra'] as const;

export interface FunctionLength {
  /** Path from the measured root, with forward slashes. */
  file: string;
  /** `name`, `Class.method`, or `outer/inner` for a nested named function. */
  name: string;
  /** 1-based line of the function's first token. */
  line: number;
  lines: number;
}

/** Every named function of one source text, in source order. */
export function functionsInSource(file: string, text: string): FunctionLength[] {
  const source = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true, ts.ScriptKind.TS);
  const found: FunctionLength[] = [];
  // `prefix` is what names inside the current node start with: `outer/` or `Class.`.
  const visit = (node: ts.Node, prefix: string): void => {
    const name = functionName(node);
    let inner = prefix;
    if (name !== undefined) {
      found.push({ file, name: `${prefix}${name}`, ...lineSpan(source, node) });
      inner = `${prefix}${name}/`;
    } else if (ts.isClassDeclaration(node) || ts.isClassExpression(node)) {
      inner = `${prefix}${node.name?.text ?? '(class)'}.`;
    }
    ts.forEachChild(node, (child) => visit(child, inner));
  };
  visit(source, '');
  return found;
}

function lineSpan(source: ts.SourceFile, node: ts.Node): { line: number; lines: number } {
  const start = source.getLineAndCharacterOfPosition(node.getStart(source)).line;
  const end = source.getLineAndCharacterOfPosition(node.getEnd()).line;
  return { line: start + 1, lines: end - start + 1 };
}

/** The name a function node is known by, or undefined for anything else (anonymous callbacks included). */
function functionName(node: ts.Node): string | undefined {
  if (ts.isFunctionDeclaration(node)) return node.name?.text ?? 'default';
  if (ts.isConstructorDeclaration(node)) return node.body === undefined ? undefined : 'constructor';
  if (
    ts.isMethodDeclaration(node) ||
    ts.isGetAccessorDeclaration(node) ||
    ts.isSetAccessorDeclaration(node)
  ) {
    return node.body === undefined ? undefined : propertyName(node.name);
  }
  if (ts.isArrowFunction(node) || ts.isFunctionExpression(node)) {
    const parent = node.parent;
    if (ts.isVariableDeclaration(parent) && parent.initializer === node) return propertyName(parent.name);
    if (ts.isPropertyAssignment(parent) && parent.initializer === node) return propertyName(parent.name);
    if (ts.isPropertyDeclaration(parent) && parent.initializer === node) return propertyName(parent.name);
    if (ts.isFunctionExpression(node) && node.name !== undefined) return node.name.text;
  }
  return undefined;
}

function propertyName(name: ts.Node): string {
  if (ts.isIdentifier(name) || ts.isPrivateIdentifier(name)) return name.text;
  if (ts.isStringLiteral(name) || ts.isNumericLiteral(name)) return name.text;
  return '(computed)';
}

/** Every named function under the measured folders of `root`, longest first (ties by file, then line). */
export function largestFunctions(
  root: string,
  folders: readonly string[] = MEASURED_FOLDERS,
): FunctionLength[] {
  const all: FunctionLength[] = [];
  for (const folder of folders) {
    for (const file of sourceFiles(path.join(root, folder))) {
      const relative = path.relative(root, file).split(path.sep).join('/');
      all.push(...functionsInSource(relative, readFileSync(file, 'utf8')));
    }
  }
  return all.sort((a, b) => b.lines - a.lines || a.file.localeCompare(b.file) || a.line - b.line);
}

function sourceFiles(dir: string): string[] {
  let entries: Dirent[];
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return [];
  }
  const files: string[] = [];
  for (const entry of entries) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) {
      if (entry.name !== 'node_modules' && entry.name !== 'cdk.out') files.push(...sourceFiles(full));
    } else if (/\.(ts|mts|tsx)$/.test(entry.name) && !entry.name.endsWith('.d.ts')) {
      files.push(full);
    }
  }
  return files;
}

interface Options {
  root: string;
  top: number;
  json: boolean;
}

/** Parses the command line; throws a one-line reason on bad usage. */
export function parseArguments(args: readonly string[], defaultRoot: string): Options {
  const options: Options = { root: defaultRoot, top: 30, json: false };
  for (let i = 0; i < args.length; i += 1) {
    const arg = args[i]!;
    if (arg === '--json') options.json = true;
    else if (arg === '--top') {
      i += 1;
      const top = Number(args[i]);
      if (!Number.isInteger(top) || top < 1) throw new Error('--top takes a whole number of at least 1');
      options.top = top;
    } else if (arg.startsWith('--')) throw new Error(`unknown option ${arg}; use [DIR] [--top N] [--json]`);
    else options.root = path.resolve(arg);
  }
  return options;
}

function main(): void {
  const repository = path.join(path.dirname(fileURLToPath(import.meta.url)), '..');
  let options: Options;
  try {
    options = parseArguments(process.argv.slice(2), repository);
  } catch (error) {
    console.error(`largest-functions: ${(error as Error).message}`);
    process.exit(2);
  }
  const all = largestFunctions(options.root);
  const top = all.slice(0, options.top);
  if (options.json) {
    const summary = {
      folders: MEASURED_FOLDERS,
      functions: all.length,
      over60Lines: all.filter((f) => f.lines > 60).length,
      over100Lines: all.filter((f) => f.lines > 100).length,
      top,
    };
    console.log(JSON.stringify(summary, null, 2));
    return;
  }
  for (const f of top) console.log(`${String(f.lines).padStart(5)}  ${f.file}:${f.line}  ${f.name}`);
  console.log(
    `${all.length} functions; ${all.filter((f) => f.lines > 60).length} over 60 lines, ${
      all.filter((f) => f.lines > 100).length
    } over 100`,
  );
}

if (process.argv[1] !== undefined && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) main();
