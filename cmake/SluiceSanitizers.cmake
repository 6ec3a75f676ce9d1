# With SLUICE_SANITIZE every target (host, plugins, tests) is built with ASan+UBSan, so a
# plugin's memory error is caught inside the host process that loads it.
if(SLUICE_SANITIZE)
  add_compile_options(-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all)
  add_link_options(-fsanitize=address,undefined)
endif()
