import { describe, expect, it } from 'vitest';
import { ConfigError } from '../../shared/errors/errors.ts';
import { compilePromptTemplate } from '../../shared/jobs/generate/prompt-template.ts';

const triage = {
  system: 'You triage tickets for {{ product }}.',
  user: 'Ticket {{ id }} from {{ customer.name }}:\n{{ text | strip }}',
};

describe('compilePromptTemplate', () => {
  it('renders the system and user messages from the record fields', () => {
    const template = compilePromptTemplate('triage', triage);
    const rendered = template.render({
      id: 't-1',
      product: 'Acme',
      customer: { name: 'Ana' },
      text: '  crashes on login  ',
    });
    expect(rendered).toEqual({
      ok: true,
      messages: [
        { role: 'system', content: 'You triage tickets for Acme.' },
        { role: 'user', content: 'Ticket t-1 from Ana:\ncrashes on login' },
      ],
    });
  });

  it('sends only a user message when there is no system template', () => {
    const rendered = compilePromptTemplate('p', { user: 'Say {{ text }}' }).render({ text: 'hi' });
    expect(rendered).toEqual({ ok: true, messages: [{ role: 'user', content: 'Say hi' }] });
  });

  it('does not HTML-escape record text', () => {
    const rendered = compilePromptTemplate('p', { user: '{{ text }}' }).render({ text: 'a < b & "c"' });
    expect(rendered).toEqual({ ok: true, messages: [{ role: 'user', content: 'a < b & "c"' }] });
  });

  it('rejects a record with a missing field instead of rendering an empty string', () => {
    const template = compilePromptTemplate('triage', triage);
    expect(template.render({ id: 't-1', customer: { name: 'Ana' }, text: 'x' })).toEqual({
      ok: false,
      reason: 'missing template field "product"',
    });
  });

  it('counts a null field as missing', () => {
    const template = compilePromptTemplate('p', { user: '{{ text }}' });
    expect(template.render({ text: null })).toEqual({
      ok: false,
      reason: 'missing template field "text"',
    });
  });

  it('names a missing nested field', () => {
    const template = compilePromptTemplate('triage', triage);
    const rendered = template.render({ id: 't', product: 'A', customer: {}, text: 'x' });
    expect(rendered.ok).toBe(false);
    expect(!rendered.ok && rendered.reason).toBe('missing template field "customer.name"');
  });

  it('lets a template test an optional field with if or default, still rejecting a bare one', () => {
    const template = compilePromptTemplate('p', {
      user: '{% if nick %}({{ nick }}) {% endif %}{{ nick | default: name }}',
    });
    const content = (fields: Record<string, unknown>) => {
      const rendered = template.render(fields);
      return rendered.ok ? rendered.messages[0]?.content : rendered.reason;
    };
    expect(content({ name: 'Ana' })).toBe('Ana');
    expect(content({ name: 'Ana', nick: null })).toBe('Ana');
    expect(content({ name: 'Ana', nick: 'A' })).toBe('(A) A');
    expect(content({})).toBe('missing template field "name"');
  });

  it('does not read inherited properties of a field', () => {
    const template = compilePromptTemplate('p', { user: '{{ text.constructor }}' });
    expect(template.render({ text: {} }).ok).toBe(false);
  });

  it('renders many records from one parse', () => {
    const template = compilePromptTemplate('p', { user: '#{{ n }}' });
    const contents = [1, 2, 3].map((n) => {
      const rendered = template.render({ n });
      return rendered.ok ? rendered.messages[0]?.content : rendered.reason;
    });
    expect(contents).toEqual(['#1', '#2', '#3']);
  });

  it('throws a one-line config error naming the pipeline and message on a syntax error', () => {
    const compile = () => compilePromptTemplate('triage', { user: '{% if text %}unclosed' });
    expect(compile).toThrow(ConfigError);
    expect(compile).toThrow(/^pipeline "triage": prompt\.user: tag \{% if text %\} not closed/);
    try {
      compile();
    } catch (error) {
      expect((error as Error).message).not.toContain('\n');
    }
  });

  it('names the system message when that is the one that fails', () => {
    expect(() => compilePromptTemplate('triage', { system: '{{ x', user: 'ok' })).toThrow(
      /^pipeline "triage": prompt\.system: /,
    );
  });

  it('refuses an unknown filter at config load', () => {
    expect(() => compilePromptTemplate('p', { user: '{{ text | shout }}' })).toThrow(
      /^pipeline "p": prompt\.user: undefined filter: shout/,
    );
  });

  it.each(['include', 'render', 'layout'])('refuses the %s tag (no file system access)', (tag) => {
    expect(() => compilePromptTemplate('p', { user: `{% ${tag} 'secrets' %}` })).toThrow(
      new RegExp(`^pipeline "p": prompt\\.user: .*the "${tag}" tag is not allowed`),
    );
  });
});
