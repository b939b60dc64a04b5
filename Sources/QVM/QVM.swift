// QVM
