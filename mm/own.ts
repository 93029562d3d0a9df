// Tables looked up by names a user gives (--kernel, --suite, --bug, actor kinds, ops, fault points):
// only a table's own keys name something, so 'constructor', '__proto__' or 'toString' name nothing.

/** table[key] when key is one of table's own keys, else undefined. */
export function own<T>(table: Readonly<Record<string, T>>, key: string): T | undefined {
  return Object.hasOwn(table, key) ? table[key] : undefined;
}

/** Is key one of table's own keys? */
export function hasOwnKey(table: object, key: string): boolean {
  return Object.hasOwn(table, key);
}
