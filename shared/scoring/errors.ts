import { ConfigError, InputError } from '../errors/errors.ts';

/**
 * A model file Sluice cannot evaluate: malformed JSON, a missing or inconsistent field,
 * or a booster/objective outside what the evaluator supports. It is a configuration
 * problem (the user must point at another model), so it exits 2 like any ConfigError.
 */
export class ModelFormatError extends ConfigError {}

/**
 * One record's value cannot become a feature (a number that does not parse, a value a
 * transform is undefined for). The record is rejected with this message as its reason;
 * other records are unaffected.
 */
export class FeatureValueError extends InputError {}
