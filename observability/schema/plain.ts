// The schema's types as a JSON document can satisfy them: Grafana declares some fields as string
// enums (ThresholdsMode, FieldColorModeId, MappingType…), which no string literal matches in
// TypeScript; `${E}` turns each into the union of its values. Everything else, including the
// excess-property check of object literals, is left as Grafana wrote it.
export type Plain<T> = T extends string
  ? `${T}`
  : T extends number | boolean | null | undefined
    ? T
    : T extends ReadonlyArray<infer U>
      ? Array<Plain<U>>
      : T extends object
        ? { [K in keyof T]: Plain<T[K]> }
        : T;
