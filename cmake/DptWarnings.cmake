# Warnings on our own targets only (never on the libraries we link).
function(dpt_warnings target)
  target_compile_options(${target} PRIVATE -Wall -Wextra -Wshadow -Wvla -Wstrict-prototypes
    -Wmissing-prototypes -Wno-unused-parameter)
  if(DPT_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
