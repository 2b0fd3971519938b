#!/usr/bin/env node
// Offline schema checks of rendered Kubernetes objects (the atoll chart).
//
//   node tests/helm/validate.mjs [--strict] [--modules DIR]
//        [--known-unmodelled Kind,Kind] [FILE|-]...
//
// Every FILE (or stdin) is multi-document YAML, e.g. a `helm template`
// output. Two checks:
//  1. Each object goes through the ajv validator of its kubernetes-models
//     class (kubernetes-models for built-in kinds; the @kubernetes-models
//     packages for ServiceMonitor/PrometheusRule, HTTPRoute, Certificate,
//     ExternalSecret): types, enums, patterns, required fields. An object
//     whose kind has no model is an error unless --known-unmodelled names it.
//  2. --strict: every object becomes a TypeScript object literal typed with
//     kubernetes-types@1.30.0 (built-in kinds: the Kubernetes 1.30 API) or
//     the model package's I<Kind> interface (custom resources), and one
//     `tsc --noEmit --strict` run checks them all. Object literals get
//     TypeScript's excess property check, so an unknown (misspelled) field
//     anywhere in an object fails, which the ajv schemas let through.
// Prints one line per object ("ok FILE Kind/name" or "FAIL ...") and the
// errors; exits 1 on any error, 2 on bad usage or a missing install.
// The packages are pinned in tests/helm/package-lock.json and installed by
// .ci/install-deps into build/tools/k8s-schema (or --modules /
// $ATOLL_K8S_SCHEMA_MODULES: a node_modules directory).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";

const HERE = dirname(fileURLToPath(import.meta.url));
const ROOT = resolve(HERE, "..", "..");

function usage(msg) {
  process.stderr.write(`validate.mjs: ${msg}\n`);
  process.exit(2);
}

const opts = { strict: false, modules: process.env.ATOLL_K8S_SCHEMA_MODULES || join(ROOT, "build", "tools", "k8s-schema", "node_modules"), unmodelled: new Set(), files: [] };
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (a === "--strict") opts.strict = true;
  else if (a === "--modules") opts.modules = resolve(argv[++i] ?? usage("--modules needs a directory"));
  else if (a === "--known-unmodelled") (argv[++i] ?? usage("--known-unmodelled needs kinds")).split(",").filter(Boolean).forEach((k) => opts.unmodelled.add(k));
  else if (a.startsWith("--")) usage(`unknown option ${a}`);
  else opts.files.push(a);
}
if (opts.files.length === 0) opts.files.push("-");
if (!existsSync(join(opts.modules, "kubernetes-models"))) usage(`no kubernetes-models under ${opts.modules} (run .ci/install-deps)`);

const YAML = await import(pathToFileURL(join(opts.modules, "yaml", "dist", "index.js")).href);

// Packages whose directories are <group>/<version>/<Kind>.js, built-ins first.
const MODEL_PACKAGES = [
  "kubernetes-models",
  "@kubernetes-models/prometheus-operator",
  "@kubernetes-models/gateway-api",
  "@kubernetes-models/cert-manager",
  "@kubernetes-models/external-secrets",
];

function splitApiVersion(apiVersion) {
  const i = apiVersion.indexOf("/");
  return i < 0 ? { group: "", version: apiVersion } : { group: apiVersion.slice(0, i), version: apiVersion.slice(i + 1) };
}

// The model file of a kind: { pkg, file } or null.
function modelOf(apiVersion, kind) {
  const { group, version } = splitApiVersion(apiVersion);
  for (const pkg of MODEL_PACKAGES) {
    const file = join(opts.modules, pkg, group, version, `${kind}.js`);
    if (existsSync(file) && (group !== "" || pkg === "kubernetes-models")) return { pkg, file, spec: `${pkg}/${group ? group + "/" : ""}${version}/${kind}` };
  }
  return null;
}

// The kubernetes-types module of a built-in API group, or null.
function k8sTypesModule(apiVersion) {
  const { group, version } = splitApiVersion(apiVersion);
  let dir;
  if (group === "") dir = "core";
  else if (!group.includes(".")) dir = group; // apps, batch, policy, autoscaling
  else if (group.endsWith(".k8s.io")) dir = group.split(".")[0]; // networking, rbac, storage
  else return null;
  return existsSync(join(opts.modules, "kubernetes-types", dir, `${version}.d.ts`)) ? `kubernetes-types/${dir}/${version}` : null;
}

function readInput(name) {
  return name === "-" ? readFileSync(0, "utf8") : readFileSync(name, "utf8");
}

const objects = []; // { where, obj }
let failed = false;
for (const name of opts.files) {
  let docs;
  try {
    docs = YAML.parseAllDocuments(readInput(name));
  } catch (e) {
    usage(`${name}: ${e.message}`);
  }
  for (const doc of docs) {
    if (doc.errors.length) {
      console.log(`FAIL ${name}: YAML: ${doc.errors.map((e) => e.message).join("; ")}`);
      failed = true;
      continue;
    }
    const obj = doc.toJS();
    if (obj === null || obj === undefined) continue;
    if (typeof obj !== "object" || Array.isArray(obj) || typeof obj.kind !== "string" || typeof obj.apiVersion !== "string") {
      console.log(`FAIL ${name}: a document that is no Kubernetes object (kind and apiVersion)`);
      failed = true;
      continue;
    }
    objects.push({ where: `${name} ${obj.kind}/${obj.metadata?.name ?? "?"}`, obj });
  }
}

// 1. ajv validation through the models.
const classes = new Map();
for (const o of objects) {
  const { apiVersion, kind } = o.obj;
  const m = modelOf(apiVersion, kind);
  if (!m) {
    if (opts.unmodelled.has(kind)) {
      console.log(`skip ${o.where}: ${apiVersion} ${kind} has no model (known-unmodelled)`);
    } else {
      console.log(`FAIL ${o.where}: no model for ${apiVersion} ${kind}`);
      failed = true;
    }
    o.skip = true;
    continue;
  }
  o.model = m;
  if (!classes.has(m.file)) classes.set(m.file, (await import(pathToFileURL(m.file).href))[kind]);
  const Cls = classes.get(m.file);
  try {
    new Cls(o.obj).validate();
    o.ok = true;
  } catch (e) {
    console.log(`FAIL ${o.where}: schema: ${e.message}`);
    failed = true;
  }
}

// 2. The strict TypeScript check: one file, one tsc run (none when no
// object is left to check).
if (opts.strict && objects.some((o) => !o.skip)) {
  const lines = ["// generated by tests/helm/validate.mjs --strict", "export {};"];
  const owners = []; // [firstLine, lastLine, where]
  const imports = new Map(); // module -> Set(name)
  let n = 0;
  for (const o of objects) {
    if (o.skip) continue;
    const { apiVersion, kind } = o.obj;
    let mod = k8sTypesModule(apiVersion);
    let type = kind;
    if (!mod && o.model.pkg === "kubernetes-models") {
      // A built-in API version kubernetes-models (about 1.34, with the
      // removed betas) knows but Kubernetes 1.30 does not serve, e.g.
      // policy/v1beta1 or resource.k8s.io/v1. (apiregistration.k8s.io is
      // the one 1.30 group kubernetes-types lacks; the chart renders none.)
      console.log(`FAIL ${o.where}: strict 1.30: ${apiVersion} is not in the Kubernetes 1.30 API (kubernetes-types@1.30.0)`);
      o.ok = false;
      failed = true;
      continue;
    }
    if (!mod) {
      mod = o.model.spec;
      type = `I${kind}`;
    }
    const alias = `T${n}`;
    if (!imports.has(mod)) imports.set(mod, []);
    imports.get(mod).push(`${type} as ${alias}`);
    const body = JSON.stringify(o.obj, null, 2).split("\n");
    const first = lines.length + 1; // 1-based line of the declaration, after imports (fixed below)
    owners.push({ first, count: body.length, where: o.where });
    lines.push(`const o${n}: ${alias} = ${body[0]}`, ...body.slice(1, -1), `${body.length > 1 ? body[body.length - 1] : ""};`);
    lines.push(`void o${n};`);
    n++;
  }
  const head = [...imports].map(([mod, names]) => `import type { ${names.join(", ")} } from "${mod}";`);
  const text = [lines[0], ...head, ...lines.slice(1)].join("\n") + "\n";
  const shift = head.length;
  const dir = mkdtempSync(join(tmpdir(), "atoll-k8s-strict-"));
  try {
    symlinkSync(opts.modules, join(dir, "node_modules"));
    writeFileSync(join(dir, "objects.ts"), text);
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({
      compilerOptions: { strict: true, noEmit: true, target: "es2022", module: "esnext", moduleResolution: "bundler", skipLibCheck: true, types: [], noErrorTruncation: true },
      files: ["objects.ts"],
    }));
    const tsc = join(opts.modules, "typescript", "bin", "tsc");
    const p = spawnSync(process.execPath, [tsc, "-p", join(dir, "tsconfig.json"), "--pretty", "false"], { encoding: "utf8", timeout: 120000 });
    if (p.status !== 0) {
      const out = (p.stdout || "") + (p.stderr || "");
      const errs = out.split("\n").filter((l) => /error TS\d+/.test(l));
      if (errs.length === 0) {
        console.log(`FAIL tsc: rc ${p.status}\n${out}`);
      }
      for (const e of errs) {
        const m = /objects\.ts\((\d+),\d+\): (.*)$/.exec(e);
        const line = m ? Number(m[1]) - shift : -1;
        const owner = owners.find((w) => line >= w.first && line < w.first + w.count);
        const src = m ? text.split("\n")[Number(m[1]) - 1].trim() : "";
        console.log(`FAIL ${owner ? owner.where : "tsc"}: strict 1.30: ${m ? m[2] : e} [${src}]`);
        if (owner) objects.find((o) => o.where === owner.where).ok = false;
      }
      failed = true;
    }
  } finally {
    if (!process.env.ATOLL_K8S_STRICT_KEEP) rmSync(dir, { recursive: true, force: true });
    else console.log(`kept ${dir}`);
  }
}

for (const o of objects) if (o.ok) console.log(`ok ${o.where}`);
console.log(`${objects.length} objects, ${failed ? "errors" : "no errors"}`);
process.exit(failed ? 1 : 0);
