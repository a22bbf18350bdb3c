
▐	/host:CPU_ыHost Threads/601ум7"X╟╘е°жП╖ё"8"Wп░░╕ж╟⌡ЭA"ё╟╘Я╓╗Й▒XZHost Threads/601*
XlaModule:*	tf_op