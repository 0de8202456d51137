# dpt_isa_sources(TARGET ISA... FILES file.c...): compiles each file once per instruction set,
# with that set's flags, into an object library linked into TARGET, and takes the files out of
# TARGET's own sources. Each build defines DPT_ISA_<ISA> (kernels/simd.h picks the vector width
# from it and suffixes the extern names with the ISA, so the builds link side by side); TARGET
# gets DPT_HAVE_<ISA>, and only code built for the baseline may call into them, after asking the
# CPU. The default build stays x86-64 baseline everywhere else. Where the flags do not exist (not
# x86-64, or a compiler other than GCC and Clang) the files are not built at all.
#   dpt_isa_sources(dpt avx2 avx512 FILES src/kernels/conv_simd.c ...)
function(dpt_isa_sources target)
  cmake_parse_arguments(ARG "" "" "FILES" ${ARGN})
  set(isas ${ARG_UNPARSED_ARGUMENTS})
  set(files "")
  foreach(f IN LISTS ARG_FILES)
    get_filename_component(abs ${f} ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    list(APPEND files ${abs})
  endforeach()
  get_target_property(sources ${target} SOURCES)
  list(REMOVE_ITEM sources ${files})
  set_property(TARGET ${target} PROPERTY SOURCES ${sources})
  if(NOT CMAKE_SYSTEM_PROCESSOR MATCHES "^(x86_64|AMD64|amd64)$"
     OR NOT CMAKE_C_COMPILER_ID MATCHES "^(GNU|Clang)$")
    return()
  endif()
  foreach(isa IN LISTS isas)
    if(isa STREQUAL "avx2")
      set(flags -mavx2 -mfma)
    elseif(isa STREQUAL "avx512")
      set(flags -mavx512f -mavx2 -mfma)
    else()
      message(FATAL_ERROR "dpt_isa_sources: unknown instruction set '${isa}' (avx2, avx512)")
    endif()
    string(TOUPPER ${isa} ISA)
    add_library(${target}_${isa} OBJECT ${files})
    target_compile_options(${target}_${isa} PRIVATE ${flags})
    target_compile_definitions(${target}_${isa} PRIVATE DPT_ISA_${ISA}=1
      $<TARGET_PROPERTY:${target},COMPILE_DEFINITIONS>)
    target_include_directories(${target}_${isa} PRIVATE
      $<TARGET_PROPERTY:${target},INCLUDE_DIRECTORIES>)
    dpt_warnings(${target}_${isa})
    target_sources(${target} PRIVATE $<TARGET_OBJECTS:${target}_${isa}>)
    target_compile_definitions(${target} PRIVATE DPT_HAVE_${ISA}=1)
  endforeach()
endfunction()
