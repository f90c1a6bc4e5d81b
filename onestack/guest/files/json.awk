# Flattens a JSON document to lines "path<TAB>value", one per scalar, where
# path joins object keys and array indexes with "/" (e.g. public_keys/mykey).
# Escapes are decoded; newlines, tabs and non-ASCII \u escapes become spaces.
BEGIN { RS = "\001"; hexdigits = "0123456789abcdef" }
{ s = s $0 }
END {
  n = length(s); pos = 1
  value("")
}
function ws() { while (pos <= n && index(" \t\r\n", substr(s, pos, 1))) pos++ }
function value(path,   c, start) {
  ws(); c = substr(s, pos, 1)
  if (c == "{") object(path)
  else if (c == "[") array(path)
  else if (c == "\"") emit(path, str())
  else {
    start = pos
    while (pos <= n && !index(",}] \t\r\n", substr(s, pos, 1))) pos++
    emit(path, substr(s, start, pos - start))
  }
}
function object(path,   key, c) {
  pos++; ws()
  if (substr(s, pos, 1) == "}") { pos++; return }
  while (pos <= n) {
    ws(); key = str(); ws(); pos++
    value(path == "" ? key : path "/" key)
    ws(); c = substr(s, pos, 1); pos++
    if (c != ",") return
  }
}
function array(path,   i, c) {
  pos++; ws()
  if (substr(s, pos, 1) == "]") { pos++; return }
  i = 0
  while (pos <= n) {
    value(path "/" i); i++
    ws(); c = substr(s, pos, 1); pos++
    if (c != ",") return
  }
}
function str(   out, c, e, code, k) {
  pos++; out = ""
  while (pos <= n) {
    c = substr(s, pos, 1)
    if (c == "\"") { pos++; return out }
    if (c == "\\") {
      e = substr(s, pos + 1, 1); pos += 2
      if (e == "n" || e == "r" || e == "t") out = out " "
      else if (e == "b" || e == "f") out = out
      else if (e == "u") {
        code = 0
        for (k = 0; k < 4; k++) code = code * 16 + index(hexdigits, tolower(substr(s, pos + k, 1))) - 1
        pos += 4
        out = out ((code >= 32 && code < 127) ? sprintf("%c", code) : " ")
      }
      else out = out e
      continue
    }
    out = out c; pos++
  }
  return out
}
function emit(path, v) { print path "\t" v }
