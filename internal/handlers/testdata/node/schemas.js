// Compiles every schema of an OpenAPI document with Ajv in strict mode, as validators such as
// express-openapi-validator and fastify do: the component schemas and each schema written inline in a
// path or webhook. A 3.1 document's schemas are JSON Schema 2020-12; a 3.0 document's are read as Ajv
// reads them by default (draft-07 with OpenAPI's nullable). The Schema Object's own keywords (example,
// discriminator, xml, externalDocs) are known. Prints what does not compile and exits 1; usage:
// node schemas.js DOCUMENT
"use strict";
const fs = require("fs");
const Ajv2020 = require("ajv/dist/2020").default;
const Ajv = require("ajv").default;
const addFormats = require("ajv-formats").default;

const doc = JSON.parse(fs.readFileSync(process.argv[2], "utf8"));
// The component schemas become the $defs of one schema, so that every $ref resolves within it.
const retarget = (v) =>
  JSON.parse(JSON.stringify(v).replaceAll('"#/components/schemas/', '"optin.json#/$defs/'));
const options = { strict: true, strictRequired: true, allowUnionTypes: true, allErrors: true };
const ajv = String(doc.openapi).startsWith("3.0") ? new Ajv(options) : new Ajv2020(options);
ajv.addVocabulary(["example", "discriminator", "xml", "externalDocs"]);
addFormats(ajv);
const failures = [];
try {
  ajv.addSchema({ $id: "optin.json", $defs: retarget(doc.components?.schemas ?? {}) });
} catch (e) {
  failures.push(`components.schemas: ${e.message}`);
}

const schemas = []; // [where, schema]
for (const name of Object.keys(doc.components?.schemas ?? {})) {
  schemas.push([`components.schemas.${name}`, { $ref: `#/components/schemas/${name}` }]);
}
// inline collects the schemas under an operation's parameters, request body and responses.
const inline = (where, node) => {
  if (node === null || typeof node !== "object") return;
  for (const [k, v] of Object.entries(node)) {
    if (k === "schema") schemas.push([`${where}.schema`, v]);
    else inline(`${where}.${k}`, v);
  }
};
for (const group of ["paths", "webhooks"]) {
  for (const [path, item] of Object.entries(doc[group] ?? {})) inline(`${group}.${path}`, item);
}
for (const [where, schema] of schemas) {
  try {
    ajv.compile(retarget(schema));
  } catch (e) {
    failures.push(`${where}: ${e.message}`);
  }
}
if (failures.length > 0) {
  console.error(failures.join("\n"));
  process.exit(1);
}
console.log(`${schemas.length} schemas compile`);
