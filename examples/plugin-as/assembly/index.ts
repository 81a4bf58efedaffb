// greet-as: an Arcade custom plugin in AssemblyScript.
//
// The Extism kernel's imports are declared here (module extism:host/env);
// AssemblyScript's own env.abort import is replaced by abort below (asc
// --use abort=assembly/index/abort), so the module imports nothing else.
//
//   metadata -> {"name":"greet-as","kind":"KIND_CUSTOM",...}
//   execute  <- {"action":"greet","params":{"name":"Ada"}}
//            -> {"status":"STATUS_SUCCESS","result":{"text":"hello, Ada"}}
//
// The greeting is the config value greeting (default "hello"). An unknown
// action fails with a permanent error.

@external("extism:host/env", "input_length") declare function input_length(): u64;
@external("extism:host/env", "input_load_u8") declare function input_load_u8(offset: u64): u8;
@external("extism:host/env", "alloc") declare function alloc(n: u64): u64;
@external("extism:host/env", "free") declare function free(offset: u64): void;
@external("extism:host/env", "length") declare function length(offset: u64): u64;
@external("extism:host/env", "load_u8") declare function load_u8(offset: u64): u8;
@external("extism:host/env", "store_u8") declare function store_u8(offset: u64, v: u8): void;
@external("extism:host/env", "output_set") declare function output_set(offset: u64, n: u64): void;
@external("extism:host/env", "error_set") declare function error_set(offset: u64): void;
@external("extism:host/env", "config_get") declare function config_get(key: u64): u64;
@external("extism:host/env", "var_set") declare function var_set(key: u64, value: u64): void;
@external("extism:host/env", "log_info") declare function log_info(offset: u64): void;

// abort replaces AssemblyScript's env.abort: the message becomes the call's
// error and the call traps.
export function abort(message: string | null, file: string | null, line: u32, column: u32): void {
  const msg = "greet-as aborted: " + (message !== null ? message : "") + " at " + (file !== null ? file : "") + ":" + line.toString() + ":" + column.toString();
  error_set(toKernel(msg));
  unreachable();
}

function toKernel(s: string): u64 {
  const bytes = Uint8Array.wrap(String.UTF8.encode(s));
  const off = alloc(<u64>bytes.length);
  for (let i = 0; i < bytes.length; i++) store_u8(off + <u64>i, bytes[i]);
  return off;
}

function fromKernel(off: u64): string {
  const n = <i32>length(off);
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = load_u8(off + <u64>i);
  return String.UTF8.decode(bytes.buffer);
}

function input(): string {
  const n = <i32>input_length();
  const bytes = new Uint8Array(n);
  for (let i = 0; i < n; i++) bytes[i] = input_load_u8(<u64>i);
  return String.UTF8.decode(bytes.buffer);
}

function output(s: string): i32 {
  const bytes = String.UTF8.encode(s);
  output_set(toKernel(s), <u64>bytes.byteLength);
  return 0;
}

// failPermanent reports an error Arcade must not retry: the plugin
// variable arcade.error.permanent, then error_set.
function failPermanent(msg: string): i32 {
  var_set(toKernel("arcade.error.permanent"), toKernel("1"));
  error_set(toKernel(msg));
  return 1;
}

function config(key: string, def: string): string {
  const k = toKernel(key);
  const off = config_get(k);
  free(k);
  if (off == 0) return def;
  const v = fromKernel(off);
  free(off);
  return v;
}

// jsonString finds "key":"value" in a JSON text and returns the value
// unescaped (\n, \t and \X for any other X; \u escapes are not decoded).
function jsonString(json: string, key: string): string | null {
  const needle = "\"" + key + "\"";
  let i = json.indexOf(needle);
  while (i >= 0) {
    let j = i + needle.length;
    while (j < json.length && json.charAt(j) == " ") j++;
    if (j < json.length && json.charAt(j) == ":") {
      j++;
      while (j < json.length && json.charAt(j) == " ") j++;
      if (json.charAt(j) != "\"") return null;
      let out = "";
      for (let k = j + 1; k < json.length; k++) {
        const c = json.charAt(k);
        if (c == "\"") return out;
        if (c == "\\" && k + 1 < json.length) {
          k++;
          const e = json.charAt(k);
          out += e == "n" ? "\n" : e == "t" ? "\t" : e;
        } else {
          out += c;
        }
      }
      return null;
    }
    i = json.indexOf(needle, i + 1);
  }
  return null;
}

// quote writes s as a JSON string.
function quote(s: string): string {
  let out = "\"";
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c == 0x22) out += "\\\"";
    else if (c == 0x5c) out += "\\\\";
    else if (c < 0x20) out += "\\u00" + (c < 16 ? "0" : "") + c.toString(16);
    else out += String.fromCharCode(c);
  }
  return out + "\"";
}

export function metadata(): i32 {
  return output(
    "{\"name\":\"greet-as\",\"kind\":\"KIND_CUSTOM\",\"version\":\"1.0.0\",\"contractVersion\":\"v1\"," +
      "\"functions\":[\"execute\"],\"description\":\"greets; an Arcade plugin in AssemblyScript\"," +
      "\"params\":[{\"name\":\"action\",\"required\":true},{\"name\":\"name\",\"defaultValue\":\"world\"}]," +
      "\"config\":[{\"name\":\"greeting\",\"defaultValue\":\"hello\"}]}",
  );
}

export function execute(): i32 {
  const req = input();
  const action = jsonString(req, "action");
  if (action === null || action != "greet") {
    return failPermanent("greet-as: unknown action (want greet)");
  }
  const name = jsonString(req, "name");
  const text = config("greeting", "hello") + ", " + (name !== null ? name : "world");
  log_info(toKernel("greeted " + (name !== null ? name : "world")));
  return output("{\"status\":\"STATUS_SUCCESS\",\"result\":{\"text\":" + quote(text) + "}}");
}
