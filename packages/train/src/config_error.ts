/**
 * A config, flag or run that cannot be used as given (a usage error: the command exits 2), as
 * against a failure while running (exit 1). The message says what was expected, what was found
 * and where.
 */
export class ConfigError extends Error {
  override name = 'ConfigError';
}
