// Type-checks a Grafana dashboard JSON against @grafana/schema with the TypeScript compiler:
// the document as a whole against `Dashboard`, and each panel's `options` and
// `fieldConfig.defaults.custom` against its panel plugin's own types. Object literals get
// TypeScript's excess-property check, so a misspelled or unknown field fails like a wrong type.
//
// usage: node check.mjs DASHBOARD.json   (exit 0 when valid; diagnostics on stderr otherwise)
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import ts from 'typescript';

const here = dirname(fileURLToPath(import.meta.url));
const PLUGINS = {
  timeseries: ['TimeSeriesPanelCfg', true],
  stat: ['StatPanelCfg', false],
  heatmap: ['HeatmapPanelCfg', true],
  table: ['TablePanelCfg', true],
  text: ['TextPanelCfg', false],
};

export function source(dashboard) {
  const lines = [
    "import type { AnnotationQuery, Dashboard, DataQuery, Panel, FieldConfigSource } from '@grafana/schema';",
    "import type { Plain } from './plain.js';",
  ];
  for (const [type, [cfg, custom]] of Object.entries(PLUGINS)) {
    const names = custom ? `Options as ${type}Options, FieldConfig as ${type}Custom` : `Options as ${type}Options`;
    lines.push(`import type { ${names} } from '@grafana/schema/dist/esm/raw/composable/${type}/panelcfg/x/${cfg}_types.gen';`);
  }
  lines.push(
    '// A panel of one plugin: its options and custom field config typed by that plugin.',
    "type Of<O, C> = Plain<Omit<Panel, 'options' | 'fieldConfig'> & { options: O; fieldConfig: FieldConfigSource<C> }>;",
    '// A query\'s own fields (expr, …) belong to its data source plugin, which the schema leaves open for',
    '// panel targets but not for annotation targets; Prometheus has no query type in @grafana/schema.',
    "type Annotation = Omit<AnnotationQuery, 'target'> & { target?: DataQuery & Record<string, unknown> };",
    "type Document = Omit<Dashboard, 'annotations'> & { annotations?: { list?: Annotation[] } };",
    `export const dashboard = ${JSON.stringify(dashboard, null, 2)} satisfies Plain<Document>;`,
  );
  const panels = (dashboard.panels ?? []).flatMap((p) => [p, ...(p.panels ?? [])]);
  for (const panel of panels) {
    if (panel.type === 'row') continue;
    const plugin = PLUGINS[panel.type];
    if (!plugin) throw new Error(`panel ${panel.id} (${panel.title}): no schema known for panel type ${panel.type}`);
    const custom = plugin[1] ? `${panel.type}Custom` : 'Record<string, never>';
    lines.push(`// ${panel.title}`, `export const panel${panel.id} = ${JSON.stringify(panel, null, 2)} satisfies Of<${panel.type}Options, ${custom}>;`);
  }
  return lines.join('\n') + '\n';
}

export function diagnostics(dashboard) {
  const file = join(here, 'dashboard.check.ts');
  const text = source(dashboard);
  const options = { strict: true, noEmit: true, target: ts.ScriptTarget.ES2022, module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext, skipLibCheck: true, types: [] };
  const host = ts.createCompilerHost(options);
  const { getSourceFile, fileExists, readFile } = host;
  host.getSourceFile = (name, version, ...rest) =>
    name === file ? ts.createSourceFile(name, text, version) : getSourceFile.call(host, name, version, ...rest);
  host.fileExists = (name) => name === file || fileExists.call(host, name);
  host.readFile = (name) => (name === file ? text : readFile.call(host, name));
  const program = ts.createProgram([file], options, host);
  return ts.getPreEmitDiagnostics(program).map((d) => {
    const message = ts.flattenDiagnosticMessageText(d.messageText, '\n');
    if (!d.file) return message;
    const { line } = d.file.getLineAndCharacterOfPosition(d.start);
    const context = d.file.text.split('\n').slice(Math.max(0, line - 2), line + 1).join('\n');
    return `${d.file.fileName === file ? 'dashboard' : d.file.fileName}:${line + 1}: ${message}\n${context}`;
  });
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const path = process.argv[2];
  if (!path) { console.error('usage: node check.mjs DASHBOARD.json'); process.exit(2); }
  const found = diagnostics(JSON.parse(readFileSync(path, 'utf8')));
  for (const d of found) console.error(d);
  console.log(found.length ? `${found.length} schema errors` : 'valid against @grafana/schema');
  process.exit(found.length ? 1 : 0);
}
