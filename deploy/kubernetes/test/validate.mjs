// Validates rendered Kubernetes manifests offline against the API's OpenAPI schema, as compiled
// into the kubernetes-models package (its models' validate()).
//   node validate.mjs FILE.yaml...
// Each YAML document must be an object of a kind the package knows (apiVersion/kind → class),
// valid against its schema, and hold no field the schema does not define: the schema allows
// unknown fields (the API server drops them, or rejects them under strict field validation), so
// a misspelt field (hostNetwrok) would pass validate() alone. Unknown fields are found by
// putting, in turn, a value no schema type accepts (a function) in place of each field: a field
// the schema defines then fails validation at its own path, an unknown one does not.
// Exit status: 0 all valid; 1 a document is invalid; 2 usage or unreadable input.
import { readFileSync } from "node:fs";
import { parseAllDocuments } from "yaml";

async function modelClass(apiVersion, kind) {
  if (typeof apiVersion !== "string" || typeof kind !== "string" ||
      !/^([a-z0-9.-]+\/)?v[0-9a-z]+$/.test(apiVersion)) {
    return null;
  }
  let mod;
  try {
    mod = await import(`kubernetes-models/${apiVersion}`);
  } catch {
    return null;
  }
  const cls = mod[kind];
  return typeof cls === "function" && cls.apiVersion === apiVersion && cls.kind === kind
    ? cls : null;
}

function errorsOf(model) {
  try {
    model.validate();
    return [];
  } catch (e) {
    if (Array.isArray(e.errors)) return e.errors;
    throw e;
  }
}

const escape = (key) => String(key).replace(/~/g, "~0").replace(/\//g, "~1");
const isObject = (v) => v !== null && typeof v === "object" && !Array.isArray(v);
const rejectsAnything = () => {};

// Pointers (RFC 6901) of the fields under `node` that the schema does not define.
function unknownFields(model, node, pointer, found) {
  if (Array.isArray(node)) {
    node.forEach((item, i) => unknownFields(model, item, `${pointer}/${i}`, found));
    return;
  }
  if (!isObject(node)) return;
  for (const key of Object.keys(node)) {
    const at = `${pointer}/${escape(key)}`;
    const saved = node[key];
    node[key] = rejectsAnything;
    const known = errorsOf(model).some(
      (e) => e.instancePath === at || e.instancePath.startsWith(`${at}/`));
    node[key] = saved;
    if (known) {
      unknownFields(model, saved, at, found);
    } else {
      found.push(at);
    }
  }
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node validate.mjs FILE.yaml...");
    return 2;
  }
  let failures = 0;
  let count = 0;
  for (const file of files) {
    let docs;
    try {
      docs = parseAllDocuments(readFileSync(file, "utf8"));
    } catch (e) {
      console.error(`${file}: ${e.message}`);
      return 2;
    }
    for (const [index, doc] of docs.entries()) {
      const where = `${file}: document ${index + 1}`;
      if (doc.errors.length > 0) {
        console.error(`${where}: YAML: ${doc.errors[0].message}`);
        failures++;
        continue;
      }
      const obj = doc.toJS();
      if (obj === null || obj === undefined) continue;  // an empty document
      count++;
      if (!isObject(obj)) {
        console.error(`${where}: not an object`);
        failures++;
        continue;
      }
      const name = `${obj.kind} ${obj.metadata?.namespace ?? ""}/${obj.metadata?.name ?? "?"}`;
      const cls = await modelClass(obj.apiVersion, obj.kind);
      if (cls === null) {
        console.error(`${where}: unknown apiVersion/kind ${obj.apiVersion}/${obj.kind}`);
        failures++;
        continue;
      }
      const model = new cls(obj);
      const errors = errorsOf(model);
      if (errors.length > 0) {
        for (const e of errors) {
          console.error(`${where} (${name}): ${e.instancePath || "/"} ${e.message}`);
        }
        failures++;
        continue;
      }
      const unknown = [];
      unknownFields(model, model, "", unknown);
      if (unknown.length > 0) {
        for (const at of unknown) {
          console.error(`${where} (${name}): ${at}: not a field of ${obj.apiVersion} ${obj.kind}`);
        }
        failures++;
        continue;
      }
      console.log(`ok ${file}: ${name}`);
    }
  }
  if (count === 0) {
    console.error("no objects in the input");
    return 1;
  }
  return failures === 0 ? 0 : 1;
}

process.exitCode = await main(process.argv.slice(2));
