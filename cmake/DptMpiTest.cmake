# dpt_add_mpi_test(NAME TARGET NP n1 n2 ...): one ctest entry per rank count, run under a real
# mpirun. --oversubscribe lets 4 ranks share 2 cores; yield_when_idle keeps waiting ranks from
# spinning on the cores the working ranks need.
function(dpt_add_mpi_test name target)
  cmake_parse_arguments(ARG "" "TIMEOUT" "NP;ARGS" ${ARGN})
  if(NOT ARG_TIMEOUT)
    set(ARG_TIMEOUT 120)
  endif()
  foreach(np IN LISTS ARG_NP)
    add_test(NAME ${name}_np${np}
      COMMAND ${MPIEXEC_EXECUTABLE} ${MPIEXEC_NUMPROC_FLAG} ${np} --oversubscribe --allow-run-as-root
              --mca mpi_yield_when_idle 1 $<TARGET_FILE:${target}> ${ARG_ARGS})
    set_tests_properties(${name}_np${np} PROPERTIES TIMEOUT ${ARG_TIMEOUT} PROCESSORS ${np}
      ENVIRONMENT "OMPI_MCA_mpi_yield_when_idle=1;OMPI_MCA_rmaps_base_oversubscribe=1")
  endforeach()
endfunction()
