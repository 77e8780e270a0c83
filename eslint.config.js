// ESLint (flat config) for the browser code: the study page and the ClickMe game page.
// `make lint` runs it with ruff. Vendored code (node_modules, the sites' vendor/ copies) and
// the files a build writes are not ours and are not linted.
const js = require("@eslint/js");
const globals = require("globals");

const WEB = ["experiment/online/web/*.js", "experiment/online/clickme_web/*.js"];
// plain scripts (globals); the rest are ES modules
const SCRIPTS = ["experiment/online/web/plugin-rapid-categorization.js",
                 "experiment/online/web/site-title.js",
                 "experiment/online/clickme_web/partner.js"];

const rules = {
  "max-len": ["error", { code: 100, ignoreUrls: true }],
  "eqeqeq": ["error", "always"],
  "no-var": "error",
  "prefer-const": "error",
  "no-unused-vars": ["error", { caughtErrors: "none" }],
};

module.exports = [
  // only the pages' code and this file: nothing else in the repository is ours to lint here
  { ignores: ["**/*", "!experiment/", "!experiment/online/", "!experiment/online/web/",
              "!experiment/online/clickme_web/", ...WEB.map((p) => "!" + p),
              "!eslint.config.js"] },
  {
    files: WEB,
    ...js.configs.recommended,
    languageOptions: {
      ecmaVersion: 2022,
      sourceType: "module",
      globals: { ...globals.browser },
    },
    rules: { ...js.configs.recommended.rules, ...rules },
  },
  {
    files: SCRIPTS,
    languageOptions: {
      sourceType: "script",
      // jsPsych's browser build (the plugin's host) and onnxruntime-web's (the partner's)
      globals: { jsPsychModule: "readonly", ort: "readonly" },
    },
    // a plain script's global is declared with var on purpose (jsPsych's plugin convention)
    rules: { "no-var": "off" },
  },
  {
    files: ["eslint.config.js"],
    ...js.configs.recommended,
    languageOptions: { sourceType: "commonjs", globals: { ...globals.node } },
    rules: { ...js.configs.recommended.rules, ...rules },
  },
];
