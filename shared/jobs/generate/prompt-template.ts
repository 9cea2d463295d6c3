import { Liquid, type Template } from 'liquidjs';
import { ConfigError } from '../../errors/errors.ts';
import type { ChatMessage } from './chat-contract.ts';

/** The message templates of a `generate` pipeline (Liquid syntax, fields of the record as variables). */
export interface PromptTemplates {
  readonly system?: string | undefined;
  readonly user: string;
}

/** The rendered messages, or why this record cannot be asked (it goes to `rejects`). */
export type RenderedPrompt =
  | { readonly ok: true; readonly messages: ChatMessage[] }
  | { readonly ok: false; readonly reason: string };

/** Templates parsed once at config load; {@link render} runs per record. */
export interface PromptTemplate {
  render(fields: Readonly<Record<string, unknown>>): RenderedPrompt;
}

// Tags that read other templates from a file system. Prompts are data, not a site:
// refusing them at parse time keeps a pipeline from reading files on the worker.
const FILE_TAGS = ['include', 'render', 'layout'] as const;

/**
 * One Liquid engine per pipeline. `strictVariables` makes a missing field an error instead
 * of an empty string (a prompt with a hole in it is answered confidently and wrongly);
 * `strictFilters` makes a misspelt filter a config error instead of a no-op.
 */
function promptEngine(): Liquid {
  const engine = new Liquid({
    strictVariables: true,
    strictFilters: true,
    // An optional field must be said so in the template: `{% if nickname %}` or
    // `{{ nickname | default: name }}` may test a missing field; a bare `{{ nickname }}` may not.
    lenientIf: true,
    ownPropertyOnly: true,
    root: [],
    partials: [],
    layouts: [],
    cache: false,
  });
  for (const tag of FILE_TAGS) {
    engine.registerTag(tag, {
      parse() {
        throw new Error(`the "${tag}" tag is not allowed in prompt templates`);
      },
      render() {
        return '';
      },
    });
  }
  return engine;
}

function firstLine(message: string): string {
  return message.split('\n')[0] ?? message;
}

/**
 * Parses the system and user templates of `pipeline`. A syntax error, an unknown filter or
 * a file tag throws a {@link ConfigError} in one line naming the pipeline and the message,
 * e.g. `pipeline "triage": prompt.user: tag {% if x %} not closed, line:1, col:1`.
 */
export function compilePromptTemplate(pipeline: string, templates: PromptTemplates): PromptTemplate {
  const engine = promptEngine();
  const parse = (name: 'system' | 'user', text: string): Template[] => {
    try {
      return engine.parse(text);
    } catch (error) {
      throw new ConfigError(`pipeline "${pipeline}": prompt.${name}: ${firstLine(describe(error))}`, {
        cause: error,
      });
    }
  };
  const system = templates.system === undefined ? undefined : parse('system', templates.system);
  const user = parse('user', templates.user);

  return {
    render(fields) {
      const scope = withoutNulls(fields);
      try {
        const messages: ChatMessage[] = [];
        if (system) messages.push({ role: 'system', content: engine.renderSync(system, scope) });
        messages.push({ role: 'user', content: engine.renderSync(user, scope) });
        return { ok: true, messages };
      } catch (error) {
        return { ok: false, reason: renderRejectReason(error) };
      }
    },
  };
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** `missing template field "customer.name"` for an undefined variable; other render errors in one line. */
function renderRejectReason(error: unknown): string {
  const original = (error as { originalError?: { variableName?: unknown } }).originalError;
  if (error instanceof Error && error.name === 'UndefinedVariableError') {
    const name =
      typeof original?.variableName === 'string'
        ? original.variableName
        : /undefined variable: ([^,]+)/.exec(error.message)?.[1];
    if (name) return `missing template field "${name}"`;
  }
  return `template error: ${firstLine(describe(error))}`;
}

/**
 * A record field that is null counts as missing: Liquid would print it as an empty
 * string. Nested plain objects are cleaned the same way; arrays keep their elements.
 */
function withoutNulls(fields: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(fields)) {
    if (value === null || value === undefined) continue;
    out[key] = isPlainObject(value) ? withoutNulls(value) : value;
  }
  return out;
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (value === null || typeof value !== 'object' || Array.isArray(value)) return false;
  const proto = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}
