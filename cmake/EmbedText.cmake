# cmake -DOUT=file.cpp -DNAMES="a;b" -DFILES="x.yaml;y.yaml" -P EmbedText.cmake
# Writes `const char* const rudder::embedded::<name>` holding each file's text.
set(body "// Generated from the files in configs/; do not edit.\nnamespace rudder::embedded {\n")
list(LENGTH NAMES n)
math(EXPR last "${n} - 1")
foreach(i RANGE ${last})
  list(GET NAMES ${i} name)
  list(GET FILES ${i} file)
  file(READ ${file} text)
  string(APPEND body "extern const char* const ${name};\nconst char* const ${name} = R\"rudder_embedded(${text})rudder_embedded\";\n")
endforeach()
string(APPEND body "}  // namespace rudder::embedded\n")
file(WRITE ${OUT}.tmp "${body}")
file(RENAME ${OUT}.tmp ${OUT})
