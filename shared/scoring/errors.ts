import { ConfigError, InputError } from '../errors/errors.ts';

/**
 * The pipeline's model cannot be used at all: absent from the bucket, too large to load
 * in the worker, or a file the evaluator cannot reproduce. Every unit would fail alike,
 * so a unit that meets it fails at once (no redelivery) and the run fails with this one
 * line, never record by record. A configuration problem (exit 2 where the CLI sees it).
 */
export class ModelUnusable extends ConfigError {}

/**
 * A model file Sluice cannot evaluate: malformed JSON, a missing or inconsistent field,
 * or a booster/objective outside what the evaluator supports. It is a configuration
 * problem (the user must point at another model), so it exits 2 like any ConfigError.
 */
export class ModelFormatError extends ModelUnusable {}

/**
 * One record's value cannot become a feature (a number that does not parse, a value a
 * transform is undefined for). The record is rejected with this message as its reason;
 * other records are unaffected.
 */
export class FeatureValueError extends InputError {}

/**
 * The model's features and the feature spec's expanded columns disagree (order, a name,
 * or their count): every score would be silently wrong, so the run stops before any unit
 * runs, with one line naming the first difference (exit 2 where the CLI sees it).
 */
export class ModelSchemaMismatch extends ConfigError {}
