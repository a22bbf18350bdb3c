
`	/host:CPUAΤνααπ­Qpython3Ός" Ϋ©©1πΑ®“"
2μΫ|ΘΔ@;ƒZfZpython3*

step_num