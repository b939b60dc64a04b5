// CodeDomain
